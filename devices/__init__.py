"""The only code that touches recorders: volumes, drivers, the simulator."""
