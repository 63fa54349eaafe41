import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";

const { onnx } = onnxProto;
type IAttributeProto = OnnxTypes.IAttributeProto;
type IValueInfoProto = OnnxTypes.IValueInfoProto;
type INodeProto = OnnxTypes.INodeProto;
type ITensorProto = OnnxTypes.ITensorProto;
type IModelProto = OnnxTypes.IModelProto;
type IGraphProto = OnnxTypes.IGraphProto;

/** Attribute values, typed explicitly because ONNX distinguishes INT from FLOAT and lists from scalars. */
export type Attr =
  | { kind: "i"; v: number }
  | { kind: "f"; v: number }
  | { kind: "ints"; v: number[] }
  | { kind: "s"; v: string }
  | { kind: "g"; v: IGraphProto };
export const A = {
  i: (v: number): Attr => ({ kind: "i", v }),
  f: (v: number): Attr => ({ kind: "f", v }),
  ints: (v: number[]): Attr => ({ kind: "ints", v }),
  s: (v: string): Attr => ({ kind: "s", v }),
};

export type ElemType = "float" | "int64" | "bool" | "int32";
const ELEM: Record<ElemType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
  int32: onnx.TensorProto.DataType.INT32,
};

export type Dim = number | string;

/** The largest serialized model onnxruntime loads (a protobuf message is limited to 2 GiB). */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

function attribute(name: string, a: Attr): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case "i":
      return { name, type: T.INT, i: a.v };
    case "f":
      return { name, type: T.FLOAT, f: a.v };
    case "ints":
      return { name, type: T.INTS, ints: a.v };
    case "s":
      return { name, type: T.STRING, s: new TextEncoder().encode(a.v) };
    case "g":
      return { name, type: T.GRAPH, g: a.v };
  }
}

/** `dims` null: a tensor of any shape. */
function valueInfo(name: string, type: ElemType, dims: Dim[] | null): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        ...(dims ? { shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } : {}),
      },
    },
  };
}

/** Every read of `from` by these nodes and the subgraphs they hold (an If's branches) becomes a read of `to`. */
function renameInputs(nodes: INodeProto[], from: string, to: string): void {
  for (const n of nodes) {
    n.input = n.input!.map((i) => (i === from ? to : i));
    for (const a of n.attribute ?? []) if (a.g) renameInputs(a.g.node!, from, to);
  }
}

/**
 * Builds an ONNX graph in code: named inputs/outputs, initializers (weights become constants the runtime can
 * pre-pack), and nodes. Intermediate names are generated, so graphs read like straight-line code.
 */
export class GraphBuilder {
  private nodes: INodeProto[] = [];
  private readonly inits: ITensorProto[] = [];
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  /** Graph outputs by name, with the value each one is (see `output`). */
  private readonly outputValues: { value: string; name: string }[] = [];
  private counter = 0;
  private readonly consts = new Map<string, string>();

  constructor(private readonly name: string) {}

  input(name: string, dims: Dim[], type: ElemType = "float"): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /**
   * Marks `value` as a graph output named `name`. At `build`, the node producing it is made to produce `name`
   * instead: an Identity renaming a value that other nodes also read stays in the graph as a copy (onnxruntime
   * removes only unshared ones), e.g. 2 MB a step for a head's 32 rows of logits.
   */
  output(value: string, name: string, dims: Dim[] | null, type: ElemType = "float"): void {
    this.outputValues.push({ value, name });
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Gives each graph output its name: renames its producer's output where it can, else copies it with an Identity. */
  private nameOutputs(): void {
    for (const out of this.outputValues) {
      const { value, name } = out;
      if (value === name) continue;
      const producer = this.nodes.find((n) => n.output!.includes(value));
      if (producer && this.outputValues.filter((o) => o.value === value).length === 1) {
        producer.output = producer.output!.map((o) => (o === value ? name : o));
        renameInputs(this.nodes, value, name);
      } else this.nodes.push({ opType: "Identity", input: [value], output: [name], name: `out_${name}` });
      out.value = name;
    }
  }

  /** A float initializer (a weight). The bytes are copied into the model; the caller may drop its array. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`weight ${name}: ${data.length} values for shape [${dims}]`);
    this.inits.push({
      name,
      dims,
      dataType: ELEM.float,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** An int64 constant (shapes, axes, indices), deduplicated by value. */
  i64(values: number[]): string {
    const key = `i64:${values.join(",")}`;
    const hit = this.consts.get(key);
    if (hit) return hit;
    const name = `c${this.counter++}_i64`;
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.inits.push({ name, dims: [values.length], dataType: ELEM.int64, rawData: new Uint8Array(raw.buffer) });
    this.consts.set(key, name);
    return name;
  }

  /** A float scalar constant, deduplicated by value. */
  f32(value: number): string {
    const key = `f32:${value}`;
    const hit = this.consts.get(key);
    if (hit) return hit;
    const name = `c${this.counter++}_f32`;
    this.inits.push({ name, dims: [], dataType: ELEM.float, rawData: new Uint8Array(new Float32Array([value]).buffer) });
    this.consts.set(key, name);
    return name;
  }

  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.opN(type, inputs, 1, attrs)[0]!;
  }

  opN(type: string, inputs: string[], nOutputs: number, attrs: Record<string, Attr> = {}): string[] {
    const id = this.counter++;
    const output = Array.from({ length: nOutputs }, (_, k) => `${type.toLowerCase()}_${id}_${k}`);
    this.nodes.push({
      opType: type,
      input: inputs,
      output,
      name: `${type}_${id}`,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return output;
  }

  /**
   * `If`: at run time, only the branch that `cond` (a one-element bool) picks runs. Each callback adds its
   * branch's nodes and returns its float outputs (as many in both); it may use any value built before. Weights
   * and constants made in a branch join this graph's initializers, which ONNX lets subgraphs read, so one copy
   * of every weight serves both branches.
   */
  ifElse(cond: string, then: () => string[], otherwise: () => string[]): string[] {
    const thenBranch = this.subgraph(`then${this.counter}`, [], then);
    const elseBranch = this.subgraph(`else${this.counter}`, [], otherwise);
    if (thenBranch.output!.length !== elseBranch.output!.length) throw new Error("If branches must have as many outputs");
    return this.opN("If", [cond], thenBranch.output!.length, { then_branch: { kind: "g", v: thenBranch }, else_branch: { kind: "g", v: elseBranch } });
  }

  /**
   * `Loop`: runs `body` `count` times (an int64 scalar), threading `carried` float values through: each
   * iteration gets its index (int64 scalar) and the values as the last one left them, and returns their next
   * ones (shapes may change between iterations). Returns their final values. Like an If's branches, the body
   * may read any value built before it.
   */
  loop(count: string, carried: string[], body: (iteration: string, values: string[]) => string[]): string[] {
    const id = this.counter++;
    const iteration = `loop${id}_i`;
    const cond = `loop${id}_cond`;
    const inputs = carried.map((_, k) => `loop${id}_v${k}`);
    const inputInfo = [valueInfo(iteration, "int64", []), valueInfo(cond, "bool", []), ...inputs.map((v) => valueInfo(v, "float", null))];
    const graph = this.subgraph(`loop${id}`, inputInfo, () => {
      const next = body(iteration, inputs);
      if (next.length !== carried.length) throw new Error("a loop body returns as many values as it carries");
      return [cond, ...next];
    }, (v, k) => (k === 0 ? valueInfo(v, "bool", []) : valueInfo(v, "float", null)));
    return this.opN("Loop", [count, "", ...carried], carried.length, { body: { kind: "g", v: graph } });
  }

  /**
   * A subgraph (an If branch, a Loop body) of the nodes `body` adds, with the values it returns as outputs (float
   * of any shape unless `info` says otherwise). An output must be produced inside the subgraph: an outer value,
   * an input, or one returned twice is copied there.
   */
  private subgraph(name: string, input: IValueInfoProto[], body: () => string[], info = (v: string, _k: number) => valueInfo(v, "float", null)): IGraphProto {
    const outer = this.nodes;
    this.nodes = [];
    try {
      const values = body();
      const output = values.map((v, k) => (this.nodes.some((n) => n.output!.includes(v)) && values.indexOf(v) === k ? v : this.op("Identity", [v])));
      return { name: `${this.name}_${name}`, node: this.nodes, input, output: output.map(info) };
    } finally {
      this.nodes = outer;
    }
  }

  build(): Uint8Array {
    this.nameOutputs();
    // onnxruntime refuses a model over 2 GB; saying which graph is too large beats its generic message.
    const tooLarge = (bytes: number) => new Error(`graph ${this.name} is ${(bytes / 2 ** 30).toFixed(2)} GiB: onnxruntime loads models of at most 2 GiB`);
    const weightBytes = this.inits.reduce((n, t) => n + (t.rawData?.length ?? 0), 0);
    if (weightBytes > MAX_MODEL_BYTES) throw tooLarge(weightBytes);
    const model: IModelProto = {
      irVersion: 8,
      producerName: "moe-edge-engine",
      opsetImport: [{ domain: "", version: 17 }],
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    };
    const bytes = onnx.ModelProto.encode(model).finish();
    if (bytes.byteLength > MAX_MODEL_BYTES) throw tooLarge(bytes.byteLength);
    return bytes;
  }
}
