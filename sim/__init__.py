"""Device-side simulators and the hall-day simulation. Production code never imports this package."""
