"""Build steps of the product that are not run by it: training the shipped quality model."""
