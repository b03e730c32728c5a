"""The local run of the whole stack, and the builders of its tool configurations."""
