// The istio ConfigMap around a mesh config text, for the kind tests (imported by *.test.ts only);
// the mesh text starts at line 8 of the document.
export const meshConfigMap = (mesh: string, ns = 'istio-system', name = 'istio') => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: ${ns}
data:
  mesh: |
${mesh
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
