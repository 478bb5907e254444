FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOOKWISE_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rules ./rules
COPY engine ./engine
COPY web ./web
RUN pip install --no-cache-dir . && useradd --create-home hookwise && mkdir -p /data \
    && chown hookwise /data
USER hookwise
EXPOSE 8000
CMD ["hookwise", "web", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
