"""Suite-wide pytest configuration: server fixtures (PostgreSQL, S3, Orthanc) come from
tests/fixtures/servers.py and start on loopback only when a test asks for them."""
pytest_plugins = ["tests.fixtures.servers"]
