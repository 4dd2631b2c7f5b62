"""Security checks: untrusted files (YAML, pickles, caches), names and paths, Ray, secrets."""
