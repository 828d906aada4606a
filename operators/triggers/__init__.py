"""Triggers: the waits that run in Airflow's triggerer (asyncio), so no worker slot is held."""
