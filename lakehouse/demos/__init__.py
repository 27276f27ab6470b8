"""Built-in demo domains, each with its declaration, data generator and simulator."""
