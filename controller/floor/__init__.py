"""The hall floor's devices: the kinds a config may name, and attaching them to the hall."""
