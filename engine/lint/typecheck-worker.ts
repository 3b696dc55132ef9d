import { parentPort, workerData } from "node:worker_threads";
import { typecheck } from "./typecheck.js";

// The worker side of typecheckInThread: checks the files it is given and posts the findings.
parentPort?.postMessage(typecheck(workerData as string[]));
