"""Logging: one JSON object per line, with the item and command named in each record."""

from __future__ import annotations

from typing import Any


def logging_config(level: str = "INFO", json_lines: bool = True,
                   framework_level: str = "WARNING") -> dict[str, Any]:
    formatter = ({"()": "pythonjsonlogger.json.JsonFormatter",
                  "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                  "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
                 if json_lines else
                 {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # Faust and aiokafka are chatty at INFO (rebalances, starts and stops).
            "faust": {"level": framework_level}, "aiokafka": {"level": framework_level},
            "mode": {"level": framework_level}, "aiohttp.access": {"level": "WARNING"},
        },
    }


def setup_logging(level: str = "INFO", json_lines: bool = True,
                  framework_level: str = "WARNING") -> None:
    import logging.config
    logging.config.dictConfig(logging_config(level, json_lines, framework_level))
    logging.captureWarnings(True)
