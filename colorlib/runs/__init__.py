"""What every command shares: the configuration, the data, the run-directory format and its safe files, the device."""
