"""Methods of the papers, each wiring foundation parts into a trainable task whose parts switch on and off."""
