# The Python parts of ECM (generator, exporter, pager, API, broadcast, migrations) in one image.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY ecm_common ./ecm_common
COPY db ./db
COPY generator ./generator
COPY exporter ./exporter
COPY stack ./stack
COPY pager ./pager
COPY api ./api
COPY broadcast ./broadcast
# The same pinned versions as `make` installs (constraints.txt, rewritten by `make lock`).
RUN pip install -c constraints.txt . && rm -rf /src

COPY scenarios /opt/ecm/scenarios

# Never run as root; the generator keeps its spool under /var/lib/ecm (a named volume).
RUN useradd --create-home --uid 10001 --user-group ecm \
    && mkdir -p /var/lib/ecm \
    && chown ecm:ecm /var/lib/ecm
USER ecm
WORKDIR /home/ecm

EXPOSE 9742 9743 9744 9745 9746
CMD ["python", "-m", "exporter"]
