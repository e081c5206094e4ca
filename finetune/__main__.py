"""``python -m finetune`` (and ``accelerate launch -m finetune``) runs the command line."""

import sys

from finetune.cli import main

sys.exit(main())
