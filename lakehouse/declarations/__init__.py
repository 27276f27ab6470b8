"""What a prediction problem is: domains, user dataset specs and their inference."""
