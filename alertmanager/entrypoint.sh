#!/bin/sh
# docker-compose entrypoint: Alertmanager does not expand environment variables, so fill the
# ${ECM_*_WEBHOOK_URL} placeholders of the committed config, then start Alertmanager on the copy.
# AM_SOURCE, AM_RENDERED and AM_BINARY exist for the tests; compose keeps the defaults.
set -eu
src=${AM_SOURCE:-/etc/alertmanager/alertmanager.yml}
out=${AM_RENDERED:-/tmp/alertmanager.yml}
binary=${AM_BINARY:-/bin/alertmanager}

cp "$src" "$out.tmp"
for name in ECM_PAGER_WEBHOOK_URL ECM_TICKETS_WEBHOOK_URL ECM_HEARTBEAT_WEBHOOK_URL; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        echo "alertmanager: environment variable $name is not set (see .env.example)" >&2
        exit 2
    fi
    # Escape what sed would read as special in the replacement: backslash, the delimiter, &.
    escaped=$(printf '%s' "$value" | sed -e 's/[\\|&]/\\&/g')
    sed -i -e "s|\\\${$name}|$escaped|g" "$out.tmp"
done
mv "$out.tmp" "$out"
exec "$binary" --config.file="$out" "$@"
