"""One environment variable, declared once next to the code that reads it.

Each integration (a network in `sources/`, a helpdesk in `helpdesks/`) declares the variables
it reads as `EnvVar`s beside its code; `connector.config.all_env_vars()` collects them for the
README's configuration tables and `yorisoi check-config --help`. Stdlib only: every module may
import it without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str  # as shown to users; secrets never have a real default
    meaning: str  # English, one sentence or two; README table cell
    secret: bool = False
    owner: str = "connector.config"  # the module that reads it

    def __iter__(self):  # (name, default, meaning): the shape of the README table's rows
        return iter((self.name, self.default, self.meaning))
