"""Running a trained generator (docs/library.md maps the files); imports neither the engine nor the lab."""
