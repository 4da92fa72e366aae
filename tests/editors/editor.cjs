// Runs the YAML language server's own validation and hover, as an editor does, against a schema.
//   node editor.cjs validate SCHEMA FILE...       one JSON line per diagnostic: file, line, column, message
//   node editor.cjs hover SCHEMA FILE LINE COLUMN  the hover's Markdown (line and column from 1)
'use strict';
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { getLanguageService } = require('yaml-language-server/lib/umd/languageservice/yamlLanguageService');
const { TextDocument } = require('vscode-languageserver-textdocument');

const [mode, schemaFile, ...rest] = process.argv.slice(2);
const service = getLanguageService({
  schemaRequestService: (uri) => Promise.resolve(fs.readFileSync(new URL(uri), 'utf8')),
  workspaceContext: { resolveRelativePath: (relative, resource) => new URL(relative, resource).href },
});
service.configure({
  validate: true,
  hover: true,
  completion: true,
  schemas: [{ uri: pathToFileURL(path.resolve(schemaFile)).href, fileMatch: ['*'] }],
});

function open(file) {
  const uri = pathToFileURL(path.resolve(file)).href;
  return TextDocument.create(uri, 'yaml', 1, fs.readFileSync(file, 'utf8'));
}

async function main() {
  if (mode === 'validate') {
    for (const file of rest) {
      for (const found of await service.doValidation(open(file), false)) {
        const { line, character } = found.range.start;
        console.log(JSON.stringify({ file, line: line + 1, column: character + 1, message: found.message }));
      }
    }
  } else if (mode === 'hover') {
    const [file, line, column] = rest;
    const hover = await service.doHover(open(file), { line: Number(line) - 1, character: Number(column) - 1 });
    const contents = hover && hover.contents;
    console.log(typeof contents === 'string' ? contents : (contents && contents.value) || '');
  } else {
    throw new Error(`unknown mode ${mode}: use validate or hover`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
