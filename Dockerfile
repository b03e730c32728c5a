# The Python parts of ECM (generator, exporter, schema migrations) in one image.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ecm_common ./ecm_common
COPY db ./db
COPY generator ./generator
COPY exporter ./exporter
COPY stack ./stack
RUN pip install . && rm -rf /src

COPY scenarios /opt/ecm/scenarios

# Never run as root; the generator keeps its spool under /var/lib/ecm (a named volume).
RUN useradd --create-home --uid 10001 --user-group ecm \
    && mkdir -p /var/lib/ecm \
    && chown ecm:ecm /var/lib/ecm
USER ecm
WORKDIR /home/ecm

EXPOSE 9742 9743
CMD ["python", "-m", "exporter"]
