# Environment of the embedded default (one machine): sourced by the Makefile recipes and
# include/airflow/start.sh. Everything lives inside the checkout, under paths git ignores.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$ROOT/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Workers reach the task execution API on the API server we start (not Airflow's default :8080).
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT/execution/}"
export CURATE_HOME="${CURATE_HOME:-$ROOT/var}"
export OMP_THREAD_LIMIT="${OMP_THREAD_LIMIT:-1}"
if [ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]; then
  mkdir -p "$AIRFLOW_HOME"
  [ -s "$AIRFLOW_HOME/jwt_secret" ] || python3 -c 'import secrets; print(secrets.token_hex(32))' > "$AIRFLOW_HOME/jwt_secret"
  AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/jwt_secret")"
  export AIRFLOW__API_AUTH__JWT_SECRET
fi
export PATH="$ROOT/.venv/bin:$PATH"
