"""Tests of the annotation service."""
