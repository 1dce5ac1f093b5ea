"""What runs beside the service rather than in it: the operator's command (`run`, `migrate`),
the embedded Redis of the laptop default, and `webhook-logger`, a receiver for people trying
the service. The core (`shared`) never imports from here."""
