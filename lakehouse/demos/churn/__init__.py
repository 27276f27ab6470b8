"""The subscription-churn demo: its declaration, seeded generator and landing simulator."""
