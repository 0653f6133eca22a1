// The IL guard behind ScalarSafetyTests: finds calls, in compiled assemblies, to TorchSharp members that create a
// temporary Scalar (directly or through TorchSharp's own helpers), and Scalars created outside a kept binding.
// TorchSharp 0.107 frees a Scalar in its finalizer while native code may still read it, so such a call can
// fail or crash whenever another thread collects garbage. Reads only System.Reflection.Metadata (in the shared
// framework) and the portable PDB for file:line.
#nullable disable
using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace EMFlow.Evaluation.Tests;

public sealed record CallSite(string Caller, string Callee, string Location, string Why);

public static class ScalarGuard
{
    static readonly Dictionary<short, OperandType> Ops = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)).ToDictionary(o => o.Value, o => o.OperandType);

    sealed class Names : ISignatureTypeProvider<string, object>
    {
        readonly MetadataReader md; public Names(MetadataReader md) { this.md = md; }
        public string GetPrimitiveType(PrimitiveTypeCode c) => c.ToString();
        public string GetTypeFromDefinition(MetadataReader r, TypeDefinitionHandle h, byte k) => TypeName(r, h);
        public string GetTypeFromReference(MetadataReader r, TypeReferenceHandle h, byte k) => TypeName(r, h);
        public string GetTypeFromSpecification(MetadataReader r, object c, TypeSpecificationHandle h, byte k) => r.GetTypeSpecification(h).DecodeSignature(this, c);
        public string GetSZArrayType(string e) => e + "[]";
        public string GetArrayType(string e, ArrayShape s) => e + "[,]";
        public string GetByReferenceType(string e) => e + "&";
        public string GetPointerType(string e) => e + "*";
        public string GetGenericInstantiation(string g, ImmutableArray<string> a) => g + "<" + string.Join(",", a) + ">";
        public string GetGenericTypeParameter(object c, int i) => "!" + i;
        public string GetGenericMethodParameter(object c, int i) => "!!" + i;
        public string GetFunctionPointerType(MethodSignature<string> s) => "fnptr";
        public string GetModifiedType(string m, string u, bool req) => u;
        public string GetPinnedType(string e) => e;
    }

    public static string TypeName(MetadataReader r, EntityHandle h)
    {
        switch (h.Kind) {
            case HandleKind.TypeDefinition: {
                var t = r.GetTypeDefinition((TypeDefinitionHandle)h);
                var n = r.GetString(t.Name);
                var d = t.GetDeclaringType();
                return d.IsNil ? Join(r.GetString(t.Namespace), n) : TypeName(r, d) + "." + n;
            }
            case HandleKind.TypeReference: {
                var t = r.GetTypeReference((TypeReferenceHandle)h);
                var n = r.GetString(t.Name);
                return t.ResolutionScope.Kind == HandleKind.TypeReference ? TypeName(r, (EntityHandle)t.ResolutionScope) + "." + n : Join(r.GetString(t.Namespace), n);
            }
            case HandleKind.TypeSpecification:
                return r.GetTypeSpecification((TypeSpecificationHandle)h).DecodeSignature(new Names(r), null);
            default: return "?";
        }
        static string Join(string ns, string n) => ns.Length == 0 ? n : ns + "." + n;
    }

    /// "TorchSharp.torch.Tensor::op_Multiply(TorchSharp.torch.Tensor,Double)"
    public static string MethodName(MetadataReader r, EntityHandle h)
    {
        var p = new Names(r);
        switch (h.Kind) {
            case HandleKind.MethodDefinition: {
                var m = r.GetMethodDefinition((MethodDefinitionHandle)h);
                var s = m.DecodeSignature(p, null);
                return TypeName(r, m.GetDeclaringType()) + "::" + r.GetString(m.Name) + "(" + string.Join(",", s.ParameterTypes) + ")";
            }
            case HandleKind.MemberReference: {
                var m = r.GetMemberReference((MemberReferenceHandle)h);
                if (m.GetKind() != MemberReferenceKind.Method) return null;
                var s = m.DecodeMethodSignature(p, null);
                var parent = m.Parent.Kind == HandleKind.TypeSpecification ? StripGeneric(TypeName(r, m.Parent)) : TypeName(r, m.Parent);
                return parent + "::" + r.GetString(m.Name) + "(" + string.Join(",", s.ParameterTypes) + ")";
            }
            case HandleKind.MethodSpecification:
                return MethodName(r, r.GetMethodSpecification((MethodSpecificationHandle)h).Method);
            default: return null;
        }
        static string StripGeneric(string n) { var i = n.IndexOf('<'); return i < 0 ? n : n[..i]; }
    }

    public readonly record struct Ins(int Offset, short Op, long Operand);

    /// Decoded IL of a method body (operands: token, local index, or 0).
    public static List<Ins> Decode(byte[] il)
    {
        var list = new List<Ins>();
        for (int i = 0; i < il.Length;) {
            int at = i;
            short v = il[i++];
            if (v == 0xFE) v = (short)(0xFE00 | il[i++]);
            var ot = Ops[v];
            int size = ot switch {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4
            };
            long operand = size switch { 1 => il[i], 2 => BitConverter.ToUInt16(il, i), 4 => BitConverter.ToInt32(il, i), _ => 0 };
            // short forms of ldloc/stloc carry the index in the opcode
            if (v >= 0x06 && v <= 0x09) operand = v - 0x06;          // ldloc.0-3
            if (v >= 0x0A && v <= 0x0D) operand = v - 0x0A;          // stloc.0-3
            list.Add(new Ins(at, v, operand));
            i += size;
        }
        return list;
    }
    static bool IsStloc(short v) => (v >= 0x0A && v <= 0x0D) || v == 0x13 || v == unchecked((short)0xFE0E);
    static bool IsLdloc(short v) => (v >= 0x06 && v <= 0x09) || v == 0x11 || v == 0x12 || v == unchecked((short)0xFE0C) || v == unchecked((short)0xFE0D);
    static bool IsCall(short v) => v == 0x28 || v == 0x6F || v == 0x73 || v == unchecked((short)0xFE06);

    /// Every (caller, callee name, IL offset, kept) for call/callvirt/newobj/ldftn in the module. kept: the call's
    /// result is stored in a local that is later passed to Dispose() or GC.KeepAlive (a `using`/`use` binding).
    public static IEnumerable<(MethodDefinitionHandle Caller, string Callee, int Offset, bool Kept)> Calls(PEReader pe, MetadataReader r)
    {
        foreach (var mh in r.MethodDefinitions) {
            var m = r.GetMethodDefinition(mh);
            if (m.RelativeVirtualAddress == 0) continue;
            var ins = Decode(pe.GetMethodBody(m.RelativeVirtualAddress).GetILBytes());
            var names = ins.Select(x => IsCall(x.Op) ? MethodName(r, MetadataTokens.EntityHandle((int)x.Operand)) : null).ToList();
            // Is the local later passed to Dispose() or GC.KeepAlive? F#'s `use` copies it first
            // (ldloc s; isinst IDisposable; stloc d; ldloc d; brfalse; ldloc d; callvirt Dispose), so copies are followed.
            bool Disposed(long local, int from, int depth)
            {
                for (int j = from; j < ins.Count; j++) {
                    if (!IsLdloc(ins[j].Op) || ins[j].Operand != local) continue;
                    for (int q = j + 1; q < Math.Min(ins.Count, j + 4); q++)
                        if (names[q] is string n && (n.EndsWith("::Dispose()") || n.StartsWith("System.GC::KeepAlive("))) return true;
                    int c = j + 1;
                    if (c < ins.Count && ins[c].Op is 0x75 or 0x74 or 0x8C) c++;   // isinst, castclass, box
                    if (depth < 3 && c < ins.Count && IsStloc(ins[c].Op) && ins[c].Operand != local && Disposed(ins[c].Operand, c + 1, depth + 1)) return true;
                }
                return false;
            }
            for (int k = 0; k < ins.Count; k++) {
                if (names[k] == null) continue;
                bool kept = k + 1 < ins.Count && IsStloc(ins[k + 1].Op) && Disposed(ins[k + 1].Operand, k + 2, 0);
                yield return (mh, names[k], ins[k].Offset, kept);
            }
        }
    }

    static bool IsScalarFactory(string callee) =>
        callee.StartsWith("TorchSharp.Scalar::op_Implicit(") ||
        callee.StartsWith("TorchSharp.ScalarExtensionMethods::ToScalar(") ||
        callee.StartsWith("TorchSharp.ScalarExtensionMethods::ToBFloat16Scalar(") ||
        callee == "TorchSharp.torch.Tensor::ToScalar()";

    /// TorchSharp members that create a temporary Scalar themselves, directly or via TorchSharp callees
    /// (non-virtual call graph), plus every optimizer step (virtual: Optimizer.step dispatches to them).
    public static HashSet<string> Offenders(string torchSharpDll)
    {
        using var pe = new PEReader(File.OpenRead(torchSharpDll));
        var r = pe.GetMetadataReader();
        var edges = new Dictionary<string, HashSet<string>>();
        var direct = new HashSet<string>();
        foreach (var (caller, callee, _, kept) in Calls(pe, r)) {
            var c = MethodName(r, caller);
            if (!edges.TryGetValue(c, out var e)) edges[c] = e = new();
            e.Add(callee);
            var ret = r.GetMethodDefinition(caller).DecodeSignature(new Names(r), null).ReturnType;
            if (IsScalarFactory(callee) && !kept && ret != "TorchSharp.Scalar") direct.Add(c);
        }
        var reach = new HashSet<string>(direct);
        for (bool changed = true; changed;) {
            changed = false;
            foreach (var (k, outs) in edges)
                if (!reach.Contains(k) && outs.Any(reach.Contains)) changed = reach.Add(k) | changed;
        }
        reach.Add("TorchSharp.torch.optim.Optimizer::step(System.Func`1<TorchSharp.torch.Tensor>)");
        return reach;
    }

    /// Offending call sites in a project assembly. allowedFactoryCallers: caller-name prefixes where creating a
    /// Scalar is allowed (the cache that keeps every Scalar alive, e.g. "EMFlow.Tensors").
    /// <summary>A source path from the repository's src/ folder on (the PDB holds absolute paths).</summary>
    static string ShortPath(string path)
    {
        var p = path.Replace('\\', '/');
        var i = p.LastIndexOf("/src/", StringComparison.Ordinal);
        return i < 0 ? Path.GetFileName(p) : p[(i + 1)..];
    }

    public static List<CallSite> Scan(string assembly, HashSet<string> offenders, string[] allowedFactoryCallers)
    {
        var found = new List<CallSite>();
        using var pe = new PEReader(File.OpenRead(assembly));
        var r = pe.GetMetadataReader();
        var pdbPath = Path.ChangeExtension(assembly, ".pdb");
        using var pdbProvider = File.Exists(pdbPath) ? MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(pdbPath)) : null;
        var pdb = pdbProvider?.GetMetadataReader();
        string Where(MethodDefinitionHandle mh, int offset)
        {
            if (pdb == null) return "?";
            SequencePoint? best = null;
            foreach (var sp in pdb.GetMethodDebugInformation(mh.ToDebugInformationHandle()).GetSequencePoints())
                if (!sp.IsHidden && sp.Offset <= offset) best = sp;
            if (best is not SequencePoint b) return "?";
            return ShortPath(pdb.GetString(pdb.GetDocument(b.Document).Name)) + ":" + b.StartLine;
        }
        foreach (var (caller, callee, offset, kept) in Calls(pe, r)) {
            var c = MethodName(r, caller);
            if (IsScalarFactory(callee) && !kept && !allowedFactoryCallers.Any(a => c.StartsWith(a)))
                found.Add(new(c, callee, Where(caller, offset), "temporary Scalar created at the call site"));
            else if (offenders.Contains(callee) || (callee.EndsWith("::step(System.Func`1<TorchSharp.torch.Tensor>)") && callee.StartsWith("TorchSharp.Modules.")))
                found.Add(new(c, callee, Where(caller, offset), "TorchSharp creates a temporary Scalar inside this member"));
        }
        return found;
    }
}
