"""Stateful fakes of the social networks' HTTP APIs, for tests and loopback demos.

Each fake keeps its state in memory, answers with bodies shaped like the real samples
(templates in tests/fixtures/social/), and runs either inside pytest-httpserver or standalone:
`python -m tests.fakes.<name> --port N` (127.0.0.1 only).
"""
