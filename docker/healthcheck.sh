#!/bin/bash
# Exit 0 when TF Serving reports at least one version of MODEL AVAILABLE on its REST status endpoint,
# GET /v1/models/MODEL. Used by the image's HEALTHCHECK, compose and the Kubernetes readiness probe.
# Plain bash (/dev/tcp), because the CPU image has no curl and a probe should not need a package install.
# Usage: layertap-healthcheck [MODEL] [PORT]   (defaults: $MODEL_NAME, 8501)
set -euo pipefail

model="${1:-${MODEL_NAME:?set MODEL_NAME or pass the model name}}"
port="${2:-8501}"

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /v1/models/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "${model}" >&3
# Read until the server closes the connection; a server that keeps it open is cut off after 5 s and
# what arrived by then is judged.
response="$(timeout 5 cat <&3 || true)"
exec 3<&-

status_line="${response%%$'\r'*}"
case "${status_line}" in
  "HTTP/1."?" 200"*) ;;
  *) echo "model ${model}: ${status_line:-no answer}" >&2; exit 1 ;;
esac
if [[ "${response}" != *'"AVAILABLE"'* ]]; then
  echo "model ${model}: no version AVAILABLE" >&2
  exit 1
fi
