#!/usr/bin/env bash
# Start the embedded Airflow (API server + UI, scheduler, dag-processor, triggerer) on 127.0.0.1.
# Sourced environment: include/airflow/env.sh. Stop with Ctrl-C (the whole process group stops).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/include/airflow/env.sh"
mkdir -p "$AIRFLOW_HOME/logs"
airflow db migrate >/dev/null
airflow pools import "$ROOT/include/airflow/pools.json" >/dev/null  # the heavy stages' pools
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; exit 0' INT TERM EXIT
airflow scheduler --skip-serve-logs >"$AIRFLOW_HOME/logs/scheduler.out" 2>&1 & pids+=($!)
airflow dag-processor >"$AIRFLOW_HOME/logs/dag-processor.out" 2>&1 & pids+=($!)
airflow triggerer --skip-serve-logs >"$AIRFLOW_HOME/logs/triggerer.out" 2>&1 & pids+=($!)
airflow api-server --host "$AIRFLOW__API__HOST" --port "$AIRFLOW__API__PORT" >"$AIRFLOW_HOME/logs/api-server.out" 2>&1 & pids+=($!)
pwfile="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 120); do
  curl -fsS "http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  sleep 1
done
echo "Airflow UI: http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"
if [ -s "$pwfile" ]; then
  echo "Login: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(*[f"{u} / {p}" for u,p in d.items()])' "$pwfile")"
fi
echo "Logs: $AIRFLOW_HOME/logs/*.out   (Ctrl-C stops everything)"
wait
