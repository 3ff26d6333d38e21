"""The hall's configuration: the hall description (TOML), settings, holidays and ledgers."""
