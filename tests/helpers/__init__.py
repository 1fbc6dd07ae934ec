"""Shared test helpers: real local servers and real data files, no mocks."""
