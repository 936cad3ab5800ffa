"""What the views call: listings and counts, accounts, dataset actions, log files, the OpenAPI document."""
