// Validate JSON documents against the exported JSON Schemas with Ajv (draft-07, strict
// mode, formats checked): node ajv_validate.js SCHEMA_DIR < cases.json
// Input: [{"schema": "<$id>", "data": <any>}, ...]; output: [{"valid": bool, "errors": [...]}].
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true });
addFormats(ajv);
const directory = process.argv[2];
for (const name of fs.readdirSync(directory).sort()) {
  if (name.endsWith(".schema.json")) {
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(directory, name), "utf8")));
  }
}
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const results = cases.map(({ schema, data }) => {
  const validate = ajv.getSchema(schema);
  if (validate === undefined) throw new Error(`no schema with $id ${schema}`);
  const valid = validate(data);
  return { valid, errors: (validate.errors || []).map((e) => `${e.instancePath} ${e.message}`) };
});
process.stdout.write(JSON.stringify(results));
