-- Databases beside Airflow's own metadata DB (docker-compose.yaml, production).
CREATE DATABASE catalog OWNER airflow;
CREATE DATABASE annotation OWNER airflow;
