// Parse and validate an AsyncAPI document with the official parser (which Modelina
// depends on), resolving its relative $refs to the JSON Schema files:
// node asyncapi_validate.js DOCUMENT. Prints the diagnostics as JSON; exit 1 on any error.
"use strict";
const fs = require("fs");
const path = require("path");
const { Parser, fromFile } = require("@asyncapi/parser");

async function main([file]) {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse();
  const shown = diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join("/"),
  }));
  process.stdout.write(JSON.stringify(shown));
  const errors = shown.filter((d) => d.severity === 0);
  process.exit(errors.length || document === undefined ? 1 : 0);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error);
  process.exit(2);
});
