"""recharge: administer and benchmark a transit stored-value card system."""

__version__ = "0.1.0"
