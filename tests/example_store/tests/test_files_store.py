"""The files store passes session-core's conformance suite."""

import pytest

from session_core.testing import StoreConformance
from session_core_files import FileStore


class TestFileStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path):
        self.folder = tmp_path / "sessions"

    def make_store(self):
        return FileStore(self.folder)

    def dump_storage(self, store):
        return "\n".join(f"{p.name} {p.read_text()}" for p in sorted(self.folder.iterdir()))
