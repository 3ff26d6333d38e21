"""Device drivers: one package per device kind, each a codec, a transport and the driver joining them.

Drivers never import the controller; they speak typed messages.
"""
