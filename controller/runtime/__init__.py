"""The hall's runtime: the one hall thread that applies commands, and its clock."""
