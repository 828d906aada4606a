"""The operator's page (Airflow plugin): see curate_operator_page.py (the plugin) and app.py (the page)."""
