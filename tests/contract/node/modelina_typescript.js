// Generate TypeScript interfaces with Modelina from each JSON Schema file named on the
// command line, one output folder per schema: node modelina_typescript.js OUT SCHEMA...
// Property names are kept as they travel (snake_case): the interfaces describe the JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const {
  TypeScriptFileGenerator,
  typeScriptDefaultPropertyKeyConstraints,
} = require("@asyncapi/modelina");

async function main([out, ...schemas]) {
  const generator = new TypeScriptFileGenerator({
    modelType: "interface",
    enumType: "union",
    constraints: {
      propertyKey: typeScriptDefaultPropertyKeyConstraints({
        NAMING_FORMATTER: (name) => name,
        NO_RESERVED_KEYWORDS: (name) => name,
      }),
    },
  });
  for (const file of schemas) {
    const schema = JSON.parse(fs.readFileSync(file, "utf8"));
    const folder = path.join(out, path.basename(file, ".schema.json"));
    const models = await generator.generateToFiles(schema, folder, { exportType: "named" });
    console.log(`${file}: ${models.map((model) => model.modelName).join(" ")}`);
  }
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error);
  process.exit(1);
});
