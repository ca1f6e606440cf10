/**
 * @openposp/iso8583: an ISO 8583 codec whose dialects are JSON data (see SPEC-FORMAT.md).
 */

export { describe, maskPan, maskValue, toJson, type DescribeOptions, type MessageJson } from './describe.js';
export { bytesToHex, hexToBytes } from './encoding.js';
export { ISO8583_ERROR_CODES, Iso8583Error, type Iso8583ErrorCode, isIso8583Error } from './errors.js';
export { FieldCodec } from './field.js';
export { listSpecs, loadSpec } from './load.js';
export {
  CompiledSpec,
  compileSpec,
  type FieldValue,
  Iso8583Message,
  messageFromJson as fromJson,
  packMessage as pack,
  packMessageHex as packHex,
  startResponse,
  type UnpackOptions,
  unpackMessage as unpack,
} from './message.js';
export {
  ALWAYS_SENSITIVE_FIELDS,
  type BcdSpec,
  DEFAULT_ECHO_FIELDS,
  type DataEncoding,
  type FieldSpec,
  type FieldType,
  type LengthKind,
  type LengthSpec,
  type MaskStyle,
  type MessageSpec,
  type PadSpec,
  type PositionalSubfieldSpec,
  type PrefixEncoding,
  type SubfieldsSpec,
  validateSpec,
} from './spec.js';
export { type TlvItem, normalizeTag } from './subfields.js';
export {
  buildCupHeader,
  buildTpdu,
  CUP_HEADER_BYTES,
  type CupFrame,
  type CupHeader,
  decodeFrame,
  encodeFrame,
  FRAME_MAX_BYTES_DEFAULT,
  FRAME_PREFIX_BYTES,
  FRAME_PREFIX_MAX_BYTES,
  type FrameLengthPrefix,
  type FrameOptions,
  FrameReader,
  joinCupFrame,
  parseCupHeader,
  parseTpdu,
  replyTpdu,
  splitCupFrame,
  TPDU_BYTES,
  TPDU_ID,
  type Tpdu,
} from './framing.js';
export {
  MAC_BYTES,
  type MacField,
  macFieldOf,
  macInputOf,
  type PackedForMac,
  packForMac,
} from './mac-input.js';
