# leadline: one process serves many calls; scale out with more containers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY media ./media
COPY agents ./agents
COPY telephony ./telephony
COPY store ./store
COPY sms ./sms
COPY ops ./ops
RUN pip install --no-cache-dir .

RUN useradd --create-home leadline && mkdir -p /app/data /app/recordings \
    && chown -R leadline /app/data /app/recordings
USER leadline

EXPOSE 8080
# Config: mount a TOML file and pass --config, or use LEADLINE_<SECTION>_<KEY> variables.
CMD ["leadline", "serve"]
