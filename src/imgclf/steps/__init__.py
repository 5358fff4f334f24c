"""Pipeline steps: each module holds one plain function (the step's logic) and a CLI `main()`."""
