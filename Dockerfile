FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORDERS_MIGRATIONS_DIR=/app/migrations \
    ORDERS_RULES_FILE=/app/rules/example.yaml

RUN useradd --system --uid 10001 --no-create-home app

WORKDIR /app

# The dependencies get a layer of their own, rebuilt only when pyproject.toml or the
# pins change; the editable install below needs the source, so it comes after COPY . .
COPY pyproject.toml constraints.txt ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# Editable, so worker/config.py finds /app/migrations next to the package.
RUN pip install -c constraints.txt -e /app

USER app
ENTRYPOINT ["order-status"]
CMD ["run", "all"]
