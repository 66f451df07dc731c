"""Logging: one JSON object per line, with the item and command named in each record.

Nothing secret reaches a log line: bearer tokens and download-link signatures are masked
in every message, and aiohttp's reports of malformed requests (which quote the oversized
header or request line, an Authorization header included) keep only the error's name.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: A JWT (three base64url parts, the first a JSON header), and a download link's signature.
SECRETS = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
                     r"|(?<=signature=)[0-9A-Za-z%]+|(?i:bearer\s+)\S+")
MASK = "[redacted]"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = SECRETS.sub(MASK, message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.name == "aiohttp.server":
            # a malformed request: the exception text quotes what the client sent
            record.msg, record.args = f"{message}: {type(record.exc_info[1]).__name__}", ()
            record.exc_info, record.exc_text = None, None
        elif record.exc_text:
            record.exc_text = SECRETS.sub(MASK, record.exc_text)
        return True


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
        "filters": {"redact": {"()": RedactSecrets}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "filters": ["redact"]}},
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
