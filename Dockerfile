# The distribution service (M31): one image for `distribution migrate` and `distribution worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs (no .venv, no .git: there is no .dockerignore to rely on).
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY web ./web
RUN pip install . && rm -rf build *.egg-info

# Read at run time from the source tree, not from the installed package.
COPY migrations ./migrations
COPY contracts ./contracts

# The packages import from /app first, so paths derived from a module's __file__
# (migrations/, contracts/) resolve inside /app; the dependencies come from `pip install .`.
ENV PYTHONPATH=/app \
    DISTRIBUTION_WEB_HOST=0.0.0.0 \
    DISTRIBUTION_WEB_PORT=6066 \
    DISTRIBUTION_DATA_DIR=/app/.distribution

RUN useradd --create-home --uid 10001 distribution \
    && mkdir -p /app/.distribution \
    && chown -R distribution /app
USER distribution

EXPOSE 6066
CMD ["distribution", "worker"]
