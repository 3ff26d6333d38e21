"""The pure core: the hall's rules as data and functions, no I/O.

Commands go in (`commands`), events come out (`events`), state is plain data
(`model`), the clock is an argument. Nothing here imports the store, the web
app, the drivers or the simulator.
"""
