"""session-core rotate-secret, through session-core's own command line."""

import io
import tomllib

from session_core.cli import main

OLD, OLDER, OLDEST = "o" * 40, "p" * 40, "q" * 40


def test_the_current_key_becomes_the_first_fallback(tmp_path):
    config = tmp_path / "session.toml"
    config.write_text(f'secret_key = "{OLD}"\nfallback_secret_keys = ["{OLDER}", "{OLDEST}"]\n')
    out = io.StringIO()
    assert main(["rotate-secret", "--config", str(config)], out=out) == 0
    rotated = tomllib.loads(out.getvalue())
    assert rotated["fallback_secret_keys"] == [OLD, OLDER]
    assert len(rotated["secret_key"]) == 64
    assert rotated["secret_key"] not in (OLD, OLDER, OLDEST)


def test_keep_says_how_many_old_keys_stay_valid(tmp_path):
    config = tmp_path / "session.toml"
    config.write_text(f'secret_key = "{OLD}"\nfallback_secret_keys = ["{OLDER}"]\n')
    out = io.StringIO()
    assert main(["rotate-secret", "--config", str(config), "--keep", "1"], out=out) == 0
    assert tomllib.loads(out.getvalue())["fallback_secret_keys"] == [OLD]
