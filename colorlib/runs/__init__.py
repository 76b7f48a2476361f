"""What every command shares: the configuration (config.py), the data (data.py), the
run-directory format and its safe files (rundir.py) and the device (device.py)."""
