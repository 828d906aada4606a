"""The annotation service: its own process with its own database and REST API.

It imports only its own code and third-party packages; the pipeline talks to it over HTTP.
"""
__version__ = "0.1.0"
