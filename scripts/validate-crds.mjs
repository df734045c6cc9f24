// Validates the Prometheus Operator objects of a rendered chart (which the
// Kubernetes schemas do not cover) against the schemas of the
// @kubernetes-models/prometheus-operator package.
// Usage: node validate-crds.mjs <node_modules dir> <rendered.yaml>
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modules, rendered] = process.argv.slice(2);
const load = (relative) => import(pathToFileURL(path.resolve(modules, relative)).href);
const yaml = (await load("js-yaml/dist/js-yaml.mjs")).default;
const base = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
const models = {
  ServiceMonitor: (await load(`${base}/ServiceMonitor.js`)).ServiceMonitor,
  PrometheusRule: (await load(`${base}/PrometheusRule.js`)).PrometheusRule,
};

let checked = 0;
let failed = 0;
for (const doc of yaml.loadAll(fs.readFileSync(rendered, "utf8"))) {
  if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
  const Model = models[doc.kind];
  try {
    if (!Model) throw new Error("no schema for this kind");
    new Model(doc).validate();
    checked++;
  } catch (e) {
    failed++;
    console.error(`ERROR ${doc.kind}/${doc.metadata?.name}: ${e.message}`);
  }
}
console.log(`${checked} Prometheus Operator object(s) valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
